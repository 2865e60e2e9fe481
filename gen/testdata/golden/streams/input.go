// Package streams covers //rpcgen:stream: an endpoint that takes streams
// beside sends and asks, one that takes only streams, one stream message
// for two endpoints, a stream message in a grouped declaration, and an
// endpoint without streams in the same package (its endpoint has no
// ReceiveStream).
package streams

// Upload opens a stream that carries a file to the store.
//
//rpcgen:stream Store
//rpcgen:stream Mirror
type Upload struct {
	Name string
	Size int64
}

// Stat asks the store about a file.
//
//rpcgen:ask Store reply=FileInfo
type Stat struct{ Name string }

// FileInfo answers Stat.
type FileInfo struct{ Size int64 }

// Evict is sent to the store and to the cache.
//
//rpcgen:send Store,Cache
type Evict struct{ Name string }

type (
	// Download opens a stream that carries a file from the store.
	//
	//rpcgen:stream Store
	Download struct{ Name string }

	// Tail opens a stream of a log's new lines.
	//
	//rpcgen:stream Logs
	Tail struct{ Log string }
)
