"""The admin: accounts, keys and pre-trade limits are edited here; orders, fills, positions, exit legs,
alerts and the audit trail are only inspected. They change through the desk's services alone, which write
each change with its outbox event (what clients are told, and what the pre-trade check's remembered
exposure relies on) and its audit record."""

from django.contrib import admin

from orders.models import Account, Alert, ApiKey, AuditEvent, ExitLeg, Fill, Order, Position, PreTradeLimits


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("name", "broker", "currency", "cash", "trading_state", "is_default")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "prefix", "role", "rate_limit_per_minute", "created_at", "revoked_at")
    readonly_fields = ("prefix", "hashed_key", "created_at", "last_used_at")
    fields = ("account", "name", "role", "rate_limit_per_minute", "prefix", "hashed_key", "created_at",
              "last_used_at", "revoked_at")

    def save_model(self, request, obj, form, change):
        if not change:
            from orders.api.auth import generate_key, hash_key

            raw, obj.prefix = generate_key()
            obj.hashed_key = hash_key(raw)
            super().save_model(request, obj, form, change)
            self.message_user(request, f"New API key (shown once, copy it now): {raw}")
            return
        super().save_model(request, obj, form, change)


class InspectOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(InspectOnly):
    list_display = ("id", "account", "symbol", "side", "order_type", "quantity", "filled_quantity", "status",
                    "client_order_id", "created_at")
    list_filter = ("status", "order_type", "side", "account")
    search_fields = ("id", "client_order_id", "symbol")


@admin.register(Fill)
class FillAdmin(InspectOnly):
    list_display = ("timestamp", "account", "symbol", "side", "quantity", "price", "commission", "order")


@admin.register(Position)
class PositionAdmin(InspectOnly):
    list_display = ("account", "symbol", "quantity", "average_price", "realized_pnl", "updated_at")


@admin.register(AuditEvent)
class AuditEventAdmin(InspectOnly):
    list_display = ("at", "account", "actor", "action", "target", "result")
    list_filter = ("action", "result")


@admin.register(PreTradeLimits)
class PreTradeLimitsAdmin(admin.ModelAdmin):
    list_display = ("account", "max_quantity_soft", "max_quantity_hard", "max_notional_soft", "max_notional_hard",
                    "price_band_pct_soft", "price_band_pct_hard", "daily_orders_soft", "daily_orders_hard",
                    "duplicate_window_seconds")


@admin.register(ExitLeg)
class ExitLegAdmin(InspectOnly):
    list_display = ("entry", "role", "strategy", "status", "trigger_price", "attempts", "last_error", "updated_at")
    list_filter = ("status", "strategy", "role")


@admin.register(Alert)
class AlertAdmin(InspectOnly):
    list_display = ("raised_at", "account", "kind", "symbol", "status", "acknowledged_by", "resolved_at")
    list_filter = ("kind", "status")
