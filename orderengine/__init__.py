"""Generated gRPC/protobuf code for the order engine's API (see protos/)."""
