// Storage: a reference-counted Float buffer from a size-bucketed free list.
//
// Training repeats the same shapes every step, so buffers released by one step
// are exactly the sizes the next step asks for. Returning them to per-size free
// lists instead of free() means a steady-state step makes no large malloc and
// touches no fresh (kernel-zeroed) pages — the ≈10% PyTorch loses to its
// allocator (issue 9). Not a general allocator: no splitting or coalescing.
import Foundation

public final class Storage: @unchecked Sendable {
  public let base: UnsafeMutablePointer<Float>
  public let count: Int
  /// Arena-owned storages (parameters, gradients) are never pooled.
  private let owner: Owner

  enum Owner { case pool, external(AnyObject?), malloc }

  /// Takes a buffer of at least `count` floats from the pool (contents undefined).
  public init(count: Int) {
    self.count = count
    self.base = BufferPool.shared.take(count)
    self.owner = .pool
  }

  /// Wraps memory owned by someone else (kept alive by `keepAlive`).
  public init(borrowing base: UnsafeMutablePointer<Float>, count: Int, keepAlive: AnyObject?) {
    self.base = base; self.count = count; self.owner = .external(keepAlive)
  }

  /// A buffer owned by this storage alone, freed on deinit (for long-lived arenas).
  public init(unpooledCount count: Int) {
    self.count = count
    self.base = BufferPool.alignedAlloc(count)
    self.owner = .malloc
  }

  deinit {
    switch owner {
    case .pool: BufferPool.shared.give(base, count)
    case .malloc: free(base)
    case .external: break
    }
  }
}

/// Free lists keyed by exact element count. Thread-safe; loader threads and
/// compute threads may allocate concurrently.
public final class BufferPool: @unchecked Sendable {
  public static let shared = BufferPool()
  private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
  private let lock = NSLock()
  /// Bytes currently handed out and held in the free lists (for the benchmark's memory report).
  public private(set) var bytesLive = 0
  public private(set) var bytesCached = 0
  public private(set) var peakBytesLive = 0
  public private(set) var mallocCount = 0

  static func alignedAlloc(_ count: Int) -> UnsafeMutablePointer<Float> {
    var raw: UnsafeMutableRawPointer? = nil
    // 64-byte alignment: one AVX-512 register, one cache line.
    let rc = posix_memalign(&raw, 64, max(1, count) * MemoryLayout<Float>.stride)
    precondition(rc == 0 && raw != nil, "out of memory allocating \(count * 4) bytes")
    return raw!.bindMemory(to: Float.self, capacity: max(1, count))
  }

  func take(_ count: Int) -> UnsafeMutablePointer<Float> {
    lock.lock()
    bytesLive += count * 4
    peakBytesLive = max(peakBytesLive, bytesLive)
    if var list = free[count], let p = list.popLast() {
      free[count] = list
      bytesCached -= count * 4
      lock.unlock()
      return p
    }
    mallocCount += 1
    lock.unlock()
    return Self.alignedAlloc(count)
  }

  func give(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
    lock.lock()
    bytesLive -= count * 4
    bytesCached += count * 4
    free[count, default: []].append(p)
    lock.unlock()
  }

  /// Returns every cached buffer to the system (e.g. between evaluation and training).
  public func trim() {
    lock.lock()
    for (_, list) in free { for p in list { Foundation.free(p) } }
    free = [:]
    bytesCached = 0
    lock.unlock()
  }

  public func resetPeak() { lock.lock(); peakBytesLive = bytesLive; lock.unlock() }
}
