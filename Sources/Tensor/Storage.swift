// Storage: a reference-counted Float buffer from a size-keyed free list.
//
// Training repeats the same shapes every step, so buffers released by one step
// are the sizes the next step asks for. Returning them to per-size free lists
// instead of free() means a steady-state step makes no large malloc and
// touches no fresh (kernel-zeroed) pages — the ≈10% PyTorch loses to its
// allocator (issue 9). A request may take a cached buffer up to 1/4 larger
// than it asks for (best fit): with exact sizes only, the step's many
// one-off temporary sizes kept 1.4 GB cached beyond the 5.2 GB live peak of a
// Swin-T 512² batch-2 step. Not a general allocator: no splitting or coalescing.
import Foundation

/// When an elementwise pass stores its output past the caches
/// (`ecenet_store16_nontemporal`). A pass that reads and writes at least
/// `minimumPassBytes` (the 32 MB last-level cache here) cannot leave its
/// output cached for the next op's forward stream anyway, and with ordinary
/// stores each output line is first read from memory. Used by the same-shape
/// arithmetic (`broadcastBinary`), BN/GN's affine passes (`channelAffine`,
/// where C is a multiple of 16) and our fp32 GEMM's C (`PackedGEMMKernel.streamsC`). Measured with the next op reading the output
/// (BENCHMARKS.md, session 9): a residual add followed by LayerNorm 160²×128,
/// forward 1.27–1.54 → 1.20–1.38 ms; BatchNorm 160²×256 followed by ReLU,
/// forward+backward 7.2–11.1 → 7.2–8.8 ms. Tests set 0 to run these stores on
/// small tensors; `Int.max` turns them off.
public enum StreamingStores {
  nonisolated(unsafe) public static var minimumPassBytes = 32 << 20
}

/// Transparent huge pages for the pool's large buffers (`madvise(MADV_HUGEPAGE)`;
/// this machine's THP mode is `madvise`, so nothing gets them unasked). One
/// TLB entry then covers 2 MiB instead of 4 KiB, which matters most in a VM,
/// where each TLB miss walks two page tables. `ECENET_HUGEPAGES=0` turns it off.
public enum HugePages {
  public static let bytes = 2 << 20
  nonisolated(unsafe) public static var enabled = ProcessInfo.processInfo.environment["ECENET_HUGEPAGES"] != "0"
}

public final class Storage: @unchecked Sendable {
  public let base: UnsafeMutablePointer<Float>
  public let count: Int
  /// Floats actually held (≥ count when the pool handed out a larger cached buffer).
  public let capacity: Int
  /// Arena-owned storages (parameters, gradients) are never pooled.
  private let owner: Owner
  /// Set when the gradients of two or more Vars share this storage (one
  /// gradient passed whole to several inputs, Var.accumulateGrad): each of
  /// them copies it before writing into it (copy on write).
  var sharedByGrads = false

  enum Owner { case pool, external(AnyObject?), malloc }

  /// Takes a buffer of at least `count` floats from the pool (contents undefined).
  public init(count: Int) {
    self.count = count
    (self.base, self.capacity) = BufferPool.shared.take(count)
    self.owner = .pool
  }

  /// Wraps memory owned by someone else (kept alive by `keepAlive`).
  public init(borrowing base: UnsafeMutablePointer<Float>, count: Int, keepAlive: AnyObject?) {
    self.base = base; self.count = count; self.capacity = count; self.owner = .external(keepAlive)
  }

  /// A buffer owned by this storage alone, freed on deinit (for long-lived arenas).
  public init(unpooledCount count: Int) {
    self.count = count; self.capacity = count
    self.base = BufferPool.alignedAlloc(count)
    self.owner = .malloc
  }

  deinit {
    switch owner {
    case .pool: BufferPool.shared.give(base, capacity)
    case .malloc: free(base)
    case .external: break
    }
  }
}

/// Free lists keyed by element count; a request takes the smallest cached
/// size in [count, count + count/4]. Thread-safe; loader threads and compute
/// threads may allocate concurrently.
public final class BufferPool: @unchecked Sendable {
  public static let shared = BufferPool()
  private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
  /// The counts whose free list is non-empty, ascending (for the best fit).
  private var sizes: [Int] = []
  private let lock = NSLock()
  /// Bytes currently handed out and held in the free lists (for the benchmark's memory report).
  public private(set) var bytesLive = 0
  public private(set) var bytesCached = 0
  public private(set) var peakBytesLive = 0
  public private(set) var mallocCount = 0
  /// Buffers handed out, reused or fresh (tests check that hot paths take none).
  public private(set) var takeCount = 0

  static func alignedAlloc(_ count: Int) -> UnsafeMutablePointer<Float> {
    var raw: UnsafeMutableRawPointer? = nil
    let bytes = max(1, count) * MemoryLayout<Float>.stride
    let huge = HugePages.enabled && bytes >= HugePages.bytes
    // 64-byte alignment: one AVX-512 register, one cache line; a huge page's
    // for buffers that can hold one.
    let rc = posix_memalign(&raw, huge ? HugePages.bytes : 64, bytes)
    precondition(rc == 0 && raw != nil, "out of memory allocating \(count * 4) bytes")
    // Only the buffer's own pages are advised: the kernel backs a 2 MiB range
    // with a huge page only when the whole range lies in advised memory, so a
    // partial last range stays on 4 KiB pages and resident memory does not grow.
    // Failure (a kernel without THP) leaves ordinary pages: nothing to report.
    if huge { _ = madvise(raw, bytes, MADV_HUGEPAGE) }
    return raw!.bindMemory(to: Float.self, capacity: max(1, count))
  }

  /// A buffer of at least `count` floats and how many it holds.
  func take(_ count: Int) -> (UnsafeMutablePointer<Float>, capacity: Int) {
    lock.lock()
    defer { lock.unlock() }
    takeCount += 1
    let i = firstSize(atLeast: count)
    if i < sizes.count && sizes[i] <= count + count / 4 {
      let size = sizes[i]
      // In place: copying the list out, popping and storing it back duplicated
      // the array (a malloc and a copy) on every take, with the lock held.
      let p = free[size]!.removeLast()
      if free[size]!.isEmpty { sizes.remove(at: i) }
      bytesCached -= size * 4
      bytesLive += size * 4
      peakBytesLive = max(peakBytesLive, bytesLive)
      return (p, size)
    }
    bytesLive += count * 4
    peakBytesLive = max(peakBytesLive, bytesLive)
    mallocCount += 1
    return (Self.alignedAlloc(count), count)
  }

  func give(_ p: UnsafeMutablePointer<Float>, _ capacity: Int) {
    lock.lock()
    bytesLive -= capacity * 4
    bytesCached += capacity * 4
    if free[capacity, default: []].isEmpty { sizes.insert(capacity, at: firstSize(atLeast: capacity)) }
    free[capacity, default: []].append(p)
    lock.unlock()
  }

  /// Index of the first cached size ≥ n (binary search; the lock is held).
  private func firstSize(atLeast n: Int) -> Int {
    var lo = 0, hi = sizes.count
    while lo < hi { let mid = (lo + hi) / 2; if sizes[mid] < n { lo = mid + 1 } else { hi = mid } }
    return lo
  }

  /// Returns every cached buffer to the system (e.g. between evaluation and training).
  public func trim() {
    lock.lock()
    for (_, list) in free { for p in list { Foundation.free(p) } }
    free = [:]
    sizes = []
    bytesCached = 0
    lock.unlock()
  }

  public func resetPeak() { lock.lock(); peakBytesLive = bytesLive; lock.unlock() }
}
