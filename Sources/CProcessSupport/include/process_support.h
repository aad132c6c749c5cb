#ifndef PBFT_PROCESS_SUPPORT_H
#define PBFT_PROCESS_SUPPORT_H

/// Asks the kernel to send `signal` to this process when the thread that started it exits
/// (Linux PR_SET_PDEATHSIG). Returns 0 on success, -1 where unsupported or on error.
/// prctl is variadic, which Swift cannot call; this wrapper is the only reason for this module.
int pbft_set_parent_death_signal(int signal);

#endif
