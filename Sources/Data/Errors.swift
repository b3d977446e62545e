// Every failure of the data layer is a `DataError` whose message names what
// is wrong (file, record index, source image) and, where useful, how to fix it.
import Foundation

public enum DataError: Error, CustomStringConvertible, Equatable {
  /// A setting or argument that cannot work (a message says which and why).
  case invalidArgument(String)
  /// A file or directory could not be read or written.
  case io(path: String, String)
  /// A shard file as a whole is damaged: wrong magic, truncated, bad index.
  case badShard(file: String, String)
  /// One record of a shard is damaged or does not decode.
  case badRecord(file: String, record: Int, source: String, String)
  /// The manifest is missing, unreadable or disagrees with the shards.
  case badManifest(path: String, String)
  /// An input file given to `pack` is unusable (unreadable image, size mismatch,
  /// label out of range, missing partner).
  case badInput(source: String, String)
  /// A split that has no samples at all.
  case emptySplit(String)

  public var description: String {
    switch self {
    case .invalidArgument(let m): return m
    case .io(let p, let m): return "\(p): \(m)"
    case .badShard(let f, let m): return "shard \(f): \(m)"
    case .badRecord(let f, let r, let s, let m):
      return "shard \(f), record \(r) (source \(s)): \(m)"
    case .badManifest(let p, let m): return "manifest \(p): \(m)"
    case .badInput(let s, let m): return "input \(s): \(m) (use --skip-bad to skip such inputs and count them)"
    case .emptySplit(let m): return "empty split: \(m)"
    }
  }
}

/// The label value that marks pixels the loss and the metric ignore.
public let ignoreLabel: UInt8 = 255

/// One decoded sample: an RGB image and a one-channel label map of the same
/// size whose values are class indices 0..<numClasses or `ignoreLabel`.
public struct SegSample: Sendable {
  public var image: Image8
  public var label: Image8
  /// Where it came from (a file name relative to the dataset root, or "synthetic/<i>").
  public var name: String

  public init(image: Image8, label: Image8, name: String) {
    self.image = image; self.label = label; self.name = name
  }
}

/// Anything that yields decoded samples by index: the synthetic scenes, or a
/// packed dataset. Must be safe to call from several threads at once.
public protocol SegmentationSource: Sendable {
  var count: Int { get }
  var numClasses: Int { get }
  func sample(at index: Int) throws -> SegSample
}
