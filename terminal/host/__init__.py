"""Host integration: the local HTTP + WebSocket API a front desk's software calls (issue 14)."""
