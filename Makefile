# Everyday commands; the scripts in bin/ do the work (see README.md).
.PHONY: run test

run:
	bin/run

# Extra pytest arguments: make test ARGS="-x -k worker"
test:
	bin/test $(ARGS)
