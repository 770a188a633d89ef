"""Stubs generated from the .proto files beside them by ``make proto``; never edit by hand."""
