"""`python -m eventactors_examples.library`: runs the library demo."""

from .demo import main

raise SystemExit(main())
