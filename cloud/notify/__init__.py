"""Notifiers: one small module per channel (webhook, SMTP, Telegram, Zalo) on a shared base.

``base.Notifier`` is the plug-in shape (one ``send``); ``dispatch.Dispatcher`` gives every
notifier its own queue, retries with back-off, and never makes its caller wait.
``messages`` renders a notice in Vietnamese (default) or English.
"""
