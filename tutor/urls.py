app_name = "tutor"
urlpatterns: list = []
