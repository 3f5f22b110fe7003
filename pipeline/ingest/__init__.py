"""The ingest edge: body decoding, gateway decoders and (elsewhere) the HTTP server."""
