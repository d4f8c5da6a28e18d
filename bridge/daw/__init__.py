"""Adapter scripts that place n2m clips on tracks in DAWs (REAPER, Ardour, Bitwig, Live)."""
