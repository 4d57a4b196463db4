package main

// The endpoint command lives in refdb/endpoint (Command); runEndpoint, next to runControl in
// control.go, maps its usage errors to exit status 2.
