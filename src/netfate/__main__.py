from netfate.cli import main

main()
