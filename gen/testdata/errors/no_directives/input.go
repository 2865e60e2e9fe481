package p

// Ping has no directive.
type Ping struct{}
