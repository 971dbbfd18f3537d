"""Payment providers (port and sandbox) and daily reconciliation."""
from queueserver.payments.port import (NotAPaymentCodeError, OrderInfo, PaymentDeclinedError, PaymentProvider,
                                       QrCharge, Refund, payment_code_channel)
from queueserver.payments.sandbox import SandboxPaymentProvider

__all__ = ["NotAPaymentCodeError", "OrderInfo", "PaymentDeclinedError", "PaymentProvider", "QrCharge", "Refund",
           "SandboxPaymentProvider", "payment_code_channel"]
