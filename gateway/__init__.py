"""The voxbus gateway: REST, WebSocket, SSE and the web page, bridged to the bus."""
