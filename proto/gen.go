// Package replpb holds the protobuf and gRPC definitions of replog's
// node-to-node Raft transport. Regenerate with `cd proto && go generate`.
package replpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative replication.proto
