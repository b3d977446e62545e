// Graceful stop on SIGTERM / SIGUSR1 (Slurm sends one before the time limit or
// on preemption): the handler only sets a flag; the trainer checks it at each
// iteration boundary, writes a checkpoint and exits with a status that lets
// the job be requeued. Nothing else is safe inside a signal handler.
import Foundation

public enum StopSignal {
  nonisolated(unsafe) static var flag: sig_atomic_t = 0
  nonisolated(unsafe) static var which: sig_atomic_t = 0

  /// Installs handlers for SIGTERM, SIGUSR1 and SIGINT.
  public static func install() {
    for s in [SIGTERM, SIGUSR1, SIGINT] {
      signal(s) { sig in StopSignal.which = sig; StopSignal.flag = 1 }
    }
  }

  public static var requested: Bool { flag != 0 }
  public static var signalName: String {
    switch which {
    case SIGTERM: return "SIGTERM"
    case SIGUSR1: return "SIGUSR1"
    case SIGINT: return "SIGINT"
    default: return "signal \(which)"
    }
  }
}
