"""Symbol builders for classic MXNet models."""
