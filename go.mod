module github.com/magesgx/mage

go 1.26.0

require (
	github.com/google/go-tdx-guest v0.3.1
	github.com/pelletier/go-toml/v2 v2.4.3
)

require github.com/google/go-configfs-tsm v0.2.2 // indirect

require (
	github.com/google/go-sev-guest v0.15.0
	github.com/google/logger v1.1.1 // indirect
	github.com/google/uuid v1.6.0 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
