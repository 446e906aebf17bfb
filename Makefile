# The course's two commands (see README.md):
#   make lab    set up .venv if needed, then start JupyterLab on lessons/
#   make test   set up .venv if needed, then run every test, nbval over every lesson included
VENV ?= .venv
STAMP := $(VENV)/.installed
PORT ?= 8888

.PHONY: lab test setup
setup: $(STAMP)

$(STAMP): pyproject.toml tools/setup_venv.sh
	VENV=$(VENV) ./tools/setup_venv.sh
	touch $@

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=lessons --port=$(PORT) \
		--ContentsManager.pre_save_hook=mhc_course.viz.display.strip_live_views

test: $(STAMP)
	$(VENV)/bin/ruff check .
	./tools/install_browser.sh
	MHC_COURSE_PROFILE=ci $(VENV)/bin/python -m pytest
