"""The command-line client of a remote voxbus: `voxbus listen` (a microphone or files over /stream, at real
time) and `voxbus transcribe --url` (files uploaded to POST /transcribe). Imports only `bus`, `config` and
`clients.desktop.protocol` of this repository; the server never imports it.
"""
