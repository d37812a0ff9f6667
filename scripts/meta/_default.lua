-- The processor for every topic no other processor handles (fedmsg's
-- DefaultProcessor): title from the topic, nothing else.
processor{
  name = "unhandled",
  obj = "Everything Else",
  default = true,
}
