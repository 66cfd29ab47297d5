from simchain.server import main

main()
