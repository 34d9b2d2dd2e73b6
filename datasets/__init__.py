"""Episode store (zarr), replay buffers, samplers and converters."""
