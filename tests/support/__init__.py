"""Test helpers shared by the unit, contract and stack suites."""
