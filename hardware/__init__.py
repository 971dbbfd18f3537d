"""Hardware ports, their adapters and the fakes that stand in for them.

Each peripheral has a port named by its role (``TicketPrinter``, ``ReportPrinter``,
``CodeScanner``, ``CardReader``, ``PaymentTerminal``), adapters named by technology
(``EscposTicketPrinter``, ``CupsReportPrinter``, ...) and a ``Fake*`` with the same
interface, shipped here so that apps and tests run on machines without the device.

Modules are imported by role (``from hardware.ticket_printer import ...``) so that a
call screen never imports printer or GPIO libraries it does not use.
"""
