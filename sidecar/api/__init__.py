"""Thin adapters, one module per method group: params in, domain call, wire-shaped result out."""
