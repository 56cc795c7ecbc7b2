"""Typed domain objects and enums shared by every part of netfate."""
