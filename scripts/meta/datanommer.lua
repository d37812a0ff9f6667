-- datanommer's own exceptional events (org.fedoraproject.*.datanommer.*):
-- the only one is a duplicate message id.
processor{name = "datanommer", entry = "datanommer", obj = "Datanommer Events",
  subtitle = "datanommer encountered a duplicate uuid",
  icon = "https://i.imgur.com/4g9NZu1.png",
  secondary_icon = "https://i.imgur.com/58oJkOr.gif",
  link = "https://www.destroyallsoftware.com/talks/wat",
  objects = {"wat"}}
