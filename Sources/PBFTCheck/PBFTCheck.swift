// PBFTCheck: what `pbft check` and `pbft run` judge a run by, offline, from a results folder:
// the client history (linearizability of the key-value store), the replicas' execution logs
// (agreement, integrity, checkpoint digests), liveness after the last fault, Byzantine
// evidence, the replicas' convergence after the load (their `final_status` events); and the self-contained HTML report. docs/experiments.md describes the files.
