"""Home nursing (互联网+护理服务, NUR-1..3): an order's life, who may take it, what a
cancellation refunds, and how alarms are raised. Pure: no I/O."""
