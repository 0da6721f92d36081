from caracal_api.cli import main

raise SystemExit(main())
