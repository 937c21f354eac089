from sisam.cli import main

main()
