package quic

// ResetKey returns the stateless reset key t gives its listeners.
func ResetKey(t *Transport) [32]byte { return *t.resetKey }
