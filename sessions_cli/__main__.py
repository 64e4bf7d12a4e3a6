from sessions_cli.cli import main

main()
