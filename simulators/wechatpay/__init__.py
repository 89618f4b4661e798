"""A payment provider simulator shaped like WeChat Pay API v3 (微信支付)."""
