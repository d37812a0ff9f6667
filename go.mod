module statscache

go 1.26.8

require (
	github.com/go-zeromq/zmq4 v0.17.0
	github.com/gorilla/mux v1.8.1
	github.com/mattn/go-sqlite3 v1.14.53
	github.com/valyala/fastjson v1.6.10
	github.com/yuin/gopher-lua v1.1.2
)

require (
	github.com/go-zeromq/goczmq/v4 v4.2.2 // indirect
	golang.org/x/sync v0.7.0 // indirect
	golang.org/x/text v0.15.0 // indirect
)
