"""The open platform: what shops and other services call (the Alipay-protocol trade API
and its merchants)."""
