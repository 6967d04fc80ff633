package app

import "github.com/skype-relay/relay/relay/config"

// MemoryLimit is the soft memory limit the configuration calls for, given
// to the Go runtime unless GOMEMLIMIT is set: twice
// ingest.max_inflight_bytes, plus 64 MiB for the rest of the relay.
//
// relay runs the collector with GOGC=400 (its live heap is small and its
// garbage comes per request), so the heap may grow to five times what is
// live before a collection. With 64 MiB of request bodies in flight, live
// memory peaks at about 125 MB (the bodies, the few being decoded, the
// copies a group commit makes of its batch, the rest of the relay): the
// heap grew past 1 GB, and the runtime kept it for minutes. Under the
// limit, the collector runs more often as the heap nears it instead
// (measured: 4% of the CPU with 40 senders of 1 MiB bodies), and returns
// memory to the system to stay under it. The limit is soft: live memory
// beyond it is not refused, only collected harder.
func MemoryLimit(cfg *config.Config) int64 {
	return 2*cfg.Ingest.MaxInflightBytes + 64<<20
}
