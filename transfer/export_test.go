package transfer

// DecodeChunk is decodeChunk, for the fuzz target in package transfer_test.
var DecodeChunk = decodeChunk
