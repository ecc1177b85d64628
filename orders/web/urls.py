from django.urls import path

from orders.web import views

urlpatterns = [
    path("", views.home, name="home"),
]
