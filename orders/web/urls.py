from django.contrib.auth import views as auth_views
from django.urls import path

from orders.web import approvals, login, risk_all, two_factor, views

urlpatterns = [
    path("", views.desk, name="desk"),
    path("login/", login.ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("login/code/", two_factor.code_view, name="login-code"),
    path("account/two-factor/", two_factor.setup_view, name="two-factor-setup"),
    path("account/security/", two_factor.security_view, name="security"),
    path("ticket/preview/", views.ticket_preview_view, name="ticket-preview"),
    path("ticket/submit/", views.ticket_submit, name="ticket-submit"),
    path("orders/<uuid:order_id>/cancel/", views.cancel_order_view, name="order-cancel"),
    path("orders/<uuid:order_id>/modify/", views.modify_order_view, name="order-modify"),
    path("orders/cancel-all/", views.cancel_all_view, name="orders-cancel-all"),
    path("positions/flatten-all/", views.flatten_all_view, name="positions-flatten-all"),
    path("positions/<path:symbol>/close/", views.close_position_view, name="position-close"),

    path("chart/", views.chart_data, name="chart-data"),
    path("risk/", views.risk, name="risk"),
    path("risk/all/", risk_all.risk_all, name="risk-all"),
    path("risk/all/alerts/<uuid:alert_id>/acknowledge/", risk_all.acknowledge_view, name="risk-all-acknowledge"),
    path("risk/all/kill-switch/", risk_all.kill_switch_view, name="risk-all-kill-switch"),
    path("risk/alerts/<uuid:alert_id>/acknowledge/", views.acknowledge_view, name="alert-acknowledge"),
    path("risk/alerts/<uuid:alert_id>/adopt-venue/", views.adopt_venue_view, name="alert-adopt-venue"),
    path("risk/alerts/<uuid:alert_id>/flatten/", views.alert_flatten_view, name="alert-flatten"),
    path("risk/alerts/<uuid:alert_id>/replace-exits/", views.alert_replace_exits_view, name="alert-replace-exits"),
    path("risk/kill-switch/", views.kill_switch_view, name="kill-switch"),
    path("risk/trading-state/", views.trading_state_view, name="trading-state"),
    path("risk/breakers/reset/", views.breakers_reset_view, name="breakers-reset"),
    path("risk/guards/", views.guard_levels_view, name="guard-levels"),
    path("risk/approvals/resume/", approvals.resume_ask_view, name="approval-resume"),
    path("risk/approvals/limits/", approvals.limits_ask_view, name="approval-limits"),
    path("risk/approvals/<uuid:approval_id>/decide/", approvals.decide_view, name="approval-decide"),
    path("risk/approvals/<uuid:approval_id>/withdraw/", approvals.cancel_view, name="approval-cancel"),
    path("audit/", views.audit, name="audit"),
    path("audit.csv", views.audit_csv, name="audit-csv"),
]
