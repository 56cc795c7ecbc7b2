from netfate.vnf.runtime import main

main()
