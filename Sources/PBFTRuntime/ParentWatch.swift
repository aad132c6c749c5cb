import CProcessSupport
#if canImport(Glibc)
import Glibc
#endif

/// Ties a child process's life to its parent's, for launchers: no orphans even when the
/// launcher is killed with SIGKILL, and even when the child is paused with SIGSTOP (only
/// the kernel can end a stopped process, so polling for the parent is not enough).
public enum ParentWatch {
    /// Asks the kernel for SIGKILL when the parent's thread that started this process exits
    /// (Linux `PR_SET_PDEATHSIG`; the launcher starts children from a thread that lives as
    /// long as it does). Returns false when `parent` is no longer this process's parent,
    /// i.e. it died before the request took effect: the caller should exit.
    public static func dieWithParent(_ parent: Int32) -> Bool {
        _ = pbft_set_parent_death_signal(SIGKILL)
        return getppid() == parent
    }
}
