"""The trade API spoken as Alipay's Open Platform gateway (``/gateway.do``)."""
