from django.contrib import admin

from orders.models import Account, ApiKey, AuditEvent, Fill, Order, Position


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


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "account", "symbol", "side", "order_type", "quantity", "filled_quantity", "status",
                    "client_order_id", "created_at")
    list_filter = ("status", "order_type", "side", "account")
    search_fields = ("id", "client_order_id", "symbol")


@admin.register(Fill)
class FillAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "account", "symbol", "side", "quantity", "price", "commission", "order")


@admin.register(Position)
class PositionAdmin(admin.ModelAdmin):
    list_display = ("account", "symbol", "quantity", "average_price", "realized_pnl", "updated_at")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("at", "account", "actor", "action", "target", "result")
    list_filter = ("action", "result")
