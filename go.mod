module github.com/magesgx/mage

go 1.26
