from caracal_api.errors import ServiceUnavailable, Unauthorized


class MetricsUnauthorized(Unauthorized):
    code = "unauthorized"
    description = "A valid metrics bearer is required."


class Draining(ServiceUnavailable):
    code = "draining"
    description = "The process is shutting down."

    def __init__(self) -> None:
        super().__init__(extra={"ok": False, "draining": True})


class DependencyDown(ServiceUnavailable):
    def __init__(self, code: str, dependency: str, description: str) -> None:
        super().__init__(description, extra={"ok": False, "dependency": dependency})
        self.code = code  # type: ignore[misc]


class OutboxDeadMessages(ServiceUnavailable):
    code = "outbox_dead_messages"
    description = "Dead outbox rows exceed API_READY_OUTBOX_DEAD_MAX."

    def __init__(self, dead: int, limit: int) -> None:
        super().__init__(extra={"ok": False, "deadCount": dead, "limit": limit})
