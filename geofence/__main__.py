from geofence.cli._main import main

raise SystemExit(main())
