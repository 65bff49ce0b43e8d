from plano_cli.app import main

main()
