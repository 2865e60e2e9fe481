package p

//rpcgen:message Driver
type Job struct{ ID int }

// A //rpcgen:message type needs no endpoint, but a misplaced word is an error.
//
//rpcgen:message reply=Job
type Task struct{ ID int }
