module statscache

go 1.26.8

require (
	github.com/gorilla/mux v1.8.1 // indirect
	github.com/mattn/go-sqlite3 v1.14.53 // indirect
	github.com/valyala/fastjson v1.6.10 // indirect
	github.com/yuin/gopher-lua v1.1.2 // indirect
	layeh.com/gopher-luar v1.0.11 // indirect
)
