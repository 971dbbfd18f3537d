"""Payment providers behind one port (``PaymentProvider``) with a sandbox for the demo and tests."""
from queueserver.payments.port import PaymentDeclinedError, PaymentProvider, QrCharge
from queueserver.payments.sandbox import SandboxPaymentProvider

__all__ = ["PaymentDeclinedError", "PaymentProvider", "QrCharge", "SandboxPaymentProvider"]
