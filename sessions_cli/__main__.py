from sessions_cli.cli.main import main

main()
